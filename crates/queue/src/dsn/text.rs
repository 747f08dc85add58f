//! The fixed sentences of a delivery status notification, in each language
//! of the registry.
//!
//! Only the human-readable first part of the report (RFC 6522 3) is
//! translated; the machine-readable delivery-status part (RFC 3464 2.1) is
//! the same in every language. The explanation of each reply comes from the
//! registry of `pillarbox-codes`; these are the words around it.

use pillarbox_codes::registry::Lang;

/// The words of a report in one language. Templates name their placeholders
/// in braces (`{host}`, `{limit}`).
#[derive(Debug)]
pub(super) struct Words {
    /// Subject when delivery failed for at least one recipient.
    pub subject_failed: &'static str,
    /// Subject when delivery is delayed and still being retried.
    pub subject_delayed: &'static str,
    /// Subject when the message was delivered or relayed.
    pub subject_delivered: &'static str,
    /// Who writes: `{host}` is the reporting MTA.
    pub reporter: &'static str,
    /// Introduces the recipients whose delivery failed for good.
    pub intro_failed: &'static str,
    /// Introduces the recipients whose delivery is still being retried.
    pub intro_delayed: &'static str,
    /// Introduces the recipients the message was delivered to.
    pub intro_delivered: &'static str,
    /// Introduces the recipients the message was relayed for, to a system
    /// that sends no further reports (RFC 3464 2.3.3).
    pub intro_relayed: &'static str,
    /// Label: when the message arrived here.
    pub arrival: &'static str,
    /// Label: the recipient as the sender gave it (ORCPT).
    pub original_recipient: &'static str,
    /// Label: the enhanced status code.
    pub status: &'static str,
    /// Label: the server that gave the reply.
    pub remote_server: &'static str,
    /// Label: the time of the last attempt.
    pub last_attempt: &'static str,
    /// Label: when retrying stops.
    pub retry_until: &'static str,
    /// Said when the whole original message is attached.
    pub attached_full: &'static str,
    /// Said when only the header is attached, as asked (RET=HDRS) or because
    /// nothing failed (RFC 3461 4.3).
    pub attached_headers: &'static str,
    /// Said when only the header is attached because the message was larger
    /// than `{limit}` bytes.
    pub attached_cut: &'static str,
}

impl Words {
    /// Every sentence and label, for completeness checks.
    #[cfg(test)]
    pub fn all(&self) -> [&'static str; 17] {
        [
            self.subject_failed,
            self.subject_delayed,
            self.subject_delivered,
            self.reporter,
            self.intro_failed,
            self.intro_delayed,
            self.intro_delivered,
            self.intro_relayed,
            self.arrival,
            self.original_recipient,
            self.status,
            self.remote_server,
            self.last_attempt,
            self.retry_until,
            self.attached_full,
            self.attached_headers,
            self.attached_cut,
        ]
    }
}

/// The words of `lang`.
pub(super) fn words(lang: Lang) -> &'static Words {
    match lang {
        Lang::En => &EN,
        Lang::Zh => &ZH,
        Lang::Id => &ID,
        Lang::Pt => &PT,
        Lang::Ja => &JA,
        Lang::Tr => &TR,
    }
}

const EN: Words = Words {
    subject_failed: "Undelivered Mail Returned to Sender",
    subject_delayed: "Delayed Mail (still being retried)",
    subject_delivered: "Successful Mail Delivery Report",
    reporter: "This is the mail system at {host}.",
    intro_failed: "Your message could not be delivered to the recipients below. Delivery has been given up: no further attempts will be made.",
    intro_delayed: "Your message has not been delivered yet to the recipients below. This is only a warning: delivery is still being retried, and you do not need to send the message again.",
    intro_delivered: "Your message was delivered to the recipients below.",
    intro_relayed: "Your message was passed on to the next mail system for the recipients below. That system sends no delivery reports, so you will get no further report about them.",
    arrival: "Message received",
    original_recipient: "Original recipient",
    status: "Status",
    remote_server: "Remote server",
    last_attempt: "Last attempt",
    retry_until: "Retried until",
    attached_full: "The original message is attached.",
    attached_headers: "The header of the original message is attached.",
    attached_cut: "Only the header of the original message is attached, because the message was larger than {limit} bytes.",
};

const ZH: Words = Words {
    subject_failed: "无法投递的邮件已退回发件人",
    subject_delayed: "邮件投递延迟（仍在重试）",
    subject_delivered: "邮件成功投递报告",
    reporter: "这是 {host} 的邮件系统发出的报告。",
    intro_failed: "您的邮件无法投递给以下收件人。投递已放弃，系统不会再尝试。",
    intro_delayed: "您的邮件尚未投递给以下收件人。这只是一条提醒：系统仍在重试投递，您无需重新发送这封邮件。",
    intro_delivered: "您的邮件已投递给以下收件人。",
    intro_relayed: "您的邮件已转交给以下收件人的下一个邮件系统。该系统不发送投递报告，因此您不会再收到关于这些收件人的报告。",
    arrival: "邮件接收时间",
    original_recipient: "原始收件人",
    status: "状态",
    remote_server: "对方服务器",
    last_attempt: "最后一次尝试",
    retry_until: "重试截止时间",
    attached_full: "原始邮件已附在本报告中。",
    attached_headers: "原始邮件的邮件头已附在本报告中。",
    attached_cut: "原始邮件大于 {limit} 字节，因此只附上了它的邮件头。",
};

const ID: Words = Words {
    subject_failed: "Email Tidak Terkirim Dikembalikan ke Pengirim",
    subject_delayed: "Email Tertunda (masih dicoba ulang)",
    subject_delivered: "Laporan Pengiriman Email Berhasil",
    reporter: "Ini adalah sistem email di {host}.",
    intro_failed: "Pesan Anda tidak dapat dikirim ke penerima di bawah ini. Pengiriman telah dihentikan dan tidak akan dicoba lagi.",
    intro_delayed: "Pesan Anda belum terkirim ke penerima di bawah ini. Ini hanya peringatan: pengiriman masih terus dicoba, dan Anda tidak perlu mengirim ulang pesan tersebut.",
    intro_delivered: "Pesan Anda telah terkirim ke penerima di bawah ini.",
    intro_relayed: "Pesan Anda telah diteruskan ke sistem email berikutnya untuk penerima di bawah ini. Sistem tersebut tidak mengirim laporan pengiriman, jadi Anda tidak akan menerima laporan lanjutan tentang mereka.",
    arrival: "Pesan diterima",
    original_recipient: "Penerima asli",
    status: "Status",
    remote_server: "Server tujuan",
    last_attempt: "Percobaan terakhir",
    retry_until: "Dicoba ulang hingga",
    attached_full: "Pesan asli terlampir.",
    attached_headers: "Header pesan asli terlampir.",
    attached_cut: "Hanya header pesan asli yang dilampirkan, karena ukuran pesan melebihi {limit} byte.",
};

const PT: Words = Words {
    subject_failed: "Mensagem não entregue devolvida ao remetente",
    subject_delayed: "Entrega atrasada (novas tentativas em andamento)",
    subject_delivered: "Relatório de entrega bem-sucedida",
    reporter: "Este é o sistema de e-mail de {host}.",
    intro_failed: "Não foi possível entregar sua mensagem aos destinatários abaixo. A entrega foi abandonada e não haverá novas tentativas.",
    intro_delayed: "Sua mensagem ainda não foi entregue aos destinatários abaixo. Este é apenas um aviso: as tentativas de entrega continuam, e você não precisa reenviar a mensagem.",
    intro_delivered: "Sua mensagem foi entregue aos destinatários abaixo.",
    intro_relayed: "Sua mensagem foi repassada ao próximo sistema de e-mail dos destinatários abaixo. Esse sistema não envia relatórios de entrega, portanto você não receberá outros relatórios sobre eles.",
    arrival: "Mensagem recebida em",
    original_recipient: "Destinatário original",
    status: "Status",
    remote_server: "Servidor remoto",
    last_attempt: "Última tentativa",
    retry_until: "Novas tentativas até",
    attached_full: "A mensagem original segue anexa.",
    attached_headers: "O cabeçalho da mensagem original segue anexo.",
    attached_cut: "Apenas o cabeçalho da mensagem original segue anexo, pois a mensagem tinha mais de {limit} bytes.",
};

const JA: Words = Words {
    subject_failed: "メール配信失敗のお知らせ（送信者へ返送）",
    subject_delayed: "メール配信遅延のお知らせ（再試行中）",
    subject_delivered: "メール配信完了のお知らせ",
    reporter: "これは {host} のメールシステムからの通知です。",
    intro_failed: "以下の宛先にメッセージを配信できませんでした。配信は中止され、今後再試行されることはありません。",
    intro_delayed: "以下の宛先へのメッセージはまだ配信されていません。これは警告のみです。配信は引き続き再試行されるため、メッセージを再送する必要はありません。",
    intro_delivered: "以下の宛先にメッセージを配信しました。",
    intro_relayed: "以下の宛先へのメッセージを次のメールシステムに引き渡しました。そのシステムは配信通知を送らないため、これらの宛先についての通知はこれ以上届きません。",
    arrival: "受信日時",
    original_recipient: "元の宛先",
    status: "ステータス",
    remote_server: "相手サーバー",
    last_attempt: "最終試行日時",
    retry_until: "再試行期限",
    attached_full: "元のメッセージを添付しています。",
    attached_headers: "元のメッセージのヘッダーを添付しています。",
    attached_cut: "元のメッセージが {limit} バイトを超えていたため、ヘッダーのみを添付しています。",
};

const TR: Words = Words {
    subject_failed: "Teslim Edilemeyen E-posta Gönderene İade Edildi",
    subject_delayed: "Geciken E-posta (yeniden deneniyor)",
    subject_delivered: "Başarılı E-posta Teslim Raporu",
    reporter: "Bu bildirim {host} üzerindeki e-posta sisteminden gönderilmiştir.",
    intro_failed: "İletiniz aşağıdaki alıcılara teslim edilemedi. Teslimattan vazgeçildi; yeniden denenmeyecek.",
    intro_delayed: "İletiniz aşağıdaki alıcılara henüz teslim edilmedi. Bu yalnızca bir uyarıdır: teslimat yeniden denenmeye devam ediyor ve iletiyi tekrar göndermeniz gerekmiyor.",
    intro_delivered: "İletiniz aşağıdaki alıcılara teslim edildi.",
    intro_relayed: "İletiniz aşağıdaki alıcılar için bir sonraki e-posta sistemine aktarıldı. Bu sistem teslim raporu göndermediğinden, bu alıcılar hakkında başka rapor almayacaksınız.",
    arrival: "İletinin alındığı zaman",
    original_recipient: "Asıl alıcı",
    status: "Durum",
    remote_server: "Uzak sunucu",
    last_attempt: "Son deneme",
    retry_until: "Yeniden deneme sonu",
    attached_full: "Özgün ileti ektedir.",
    attached_headers: "Özgün iletinin başlığı ektedir.",
    attached_cut: "İleti {limit} bayttan büyük olduğu için yalnızca özgün iletinin başlığı eklenmiştir.",
};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_language_has_every_sentence_and_the_same_placeholders() {
        let en = words(Lang::En).all();
        for lang in Lang::ALL {
            let w = words(lang).all();
            for (i, (s, e)) in w.iter().zip(en.iter()).enumerate() {
                assert!(!s.trim().is_empty(), "{lang}: sentence {i} is empty");
                for ph in ["{host}", "{limit}"] {
                    assert_eq!(
                        s.contains(ph),
                        e.contains(ph),
                        "{lang}: sentence {i} and English disagree on {ph}"
                    );
                }
            }
        }
    }

    #[test]
    fn each_language_words_its_own_subjects() {
        for (i, a) in Lang::ALL.iter().enumerate() {
            for b in &Lang::ALL[i + 1..] {
                let (wa, wb) = (words(*a), words(*b));
                assert_ne!(wa.subject_failed, wb.subject_failed, "{a} and {b}");
                assert_ne!(wa.subject_delayed, wb.subject_delayed, "{a} and {b}");
                assert_ne!(wa.subject_delivered, wb.subject_delivered, "{a} and {b}");
            }
        }
    }
}
